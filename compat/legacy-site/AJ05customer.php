<?php
//对于每一个新进入的用户进行编号
if(empty($_COOKIE['username'])){
setcookie('username','admin'.rand(100,999));
}
?>

<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" lang="zh-CN">
<head>
<title>新建网页</title>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8" />
<script type="text/javascript" src="jquery.js"></script>

<script type="text/javascript">
function xunwen(){
    //获取对话框中发送的数据
    var cont=$('textarea:first').val();
    //将数据提交到AJsendmsg.php,根据回调函数,将信息显示在屏幕上
    $.post('AJsendmsg.php',{rec:'admin',content:cont},function(res){
        if(res=='OK'){
        $('<p>你对客服说<br />'+cont+'</p>').appendTo($('#msgzone'));
        //将发送信息的文本框内的数据清空,体现发送数据的动态效果
        $('textarea:first').val('');
        }

    });
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
    <h1>Ajax顾客系统</h1>
    <h2>iframe+长连接+长轮询获取实时内容,返回到主界面</h2>

    <div id="msgzone">
    </div>

    <textarea></textarea>
    <input type="button" value="询问" onclick="xunwen();">
</body>


<script type="text/javascript">
    //接受来自客服的信息
    var setting={url:'AJ05comitajax.php',
        dataType:'json',
        success:function(res){
        // 每隔一秒返回一次数据,并继续监听
        window.setTimeout(function(){$.ajax(setting)},1000);
        //将接受的数据显示在对话框中
        $('<p>客服对你说<br/>'+res.content+'</p>').appendTo($('#msgzone'));
        }
    };
        $.ajax(setting);
</script>


</html>
