<?php
setcookie('username','admin');
?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" lang="zh-CN">
<head>
<title>新建网页</title>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8" />
<script type="text/javascript">

//在客服系统端打印用户发送的的信息,msg是在AJ04server.php
//中封装过的数据,可以直接访问
function comet(msg){
   var cont ='';
   cont += '<a onclick="replay(\''+msg.pos+'\')">'+msg.pos +'</a>'+'对你说<br />';
   cont += msg.content+'<br />';
    document.getElementById('msgzone').innerHTML +=cont;
}

//点击不同用户名的响应事件
function replay(pos){
  document.getElementById('rec').innerHTML=pos;
}

//发送信息到用户
xhr=new XMLHttpRequest();
function huifu(){
    var rec=document.getElementById('rec').innerHTML;
    var cont=document.getElementsByTagName('textarea')[0].value;
     //判断接受者或者信息是否为空
    if(rec==''||cont==''){
        alert('回复人且内容不能为空!');
        return;   
    }

    //打开通向服务器的通道。
    xhr.open('POST','AJsendmsg.php',true);
    //设置头信息
    xhr.setRequestHeader('content-type','application/x-www-form-urlencoded');
    //根据服务器端的状态码执行回调函数
    xhr.onreadystatechange=function(){
       if(this.readyState==4){
         if(this.responseText=='OK'){
        //接受数据成功需要执行的操作
        var rep ='';
        rep += '你对'+rec+'说<br />';
        rep += cont+'<br />';
        //在网页上打印信息
        document.getElementById('msgzone').innerHTML+=rep;
        //清空对话框信息
        document.getElementsByTagName('textarea')[0].value='';         
         }
       }
    }
    xhr.send('rec='+rec+'&content='+cont);
}
</script>

<style type="text/css">
#msgzone{
  border: 1px solid gray;
  width:300px;
  height:400px;
  overflow:auto;
}
</style>
</head>
    <body>
    <h1>Ajax实时聊天之客服系统</h1>
    <h2>iframe+长连接,获取实时内容,返回到主界面</h2>

    <div id="msgzone">
    </div>

    回复:<span id="rec"></span>
    <textarea></textarea>
    <input type="button" value="回复" onclick="huifu();">
    <p><iframe src="AJ04serve.php" width="0" height="0" iframeBorder="0"></iframe></p>
    </body>
</html>
