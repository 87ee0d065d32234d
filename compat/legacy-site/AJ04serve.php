<?php

//永久执行直到程序结束
set_time_limit(0);
//导入连接数据库的代码
require('./AJconn.php');

//客服端一直在监听的事件
while(true){
        //从数据库中读取rec="admin" and isread=0'的客服的对话数据
         $sql='select * from msg where rec="admin" and isread=0';
         //使用mysql_query读取内容
         $rs=mysql_query($sql,$conn); 
         //取得结果集的一行并放入数组中
         $msg=mysql_fetch_assoc($rs); 
         if(empty($msg)){
         }else{
        //更新数据库中isread=0的行改为isread=1
        $sql='update msg set isread=1 where mid='.$msg['mid'].' limit 1';
        //使用mysql_query更新内容内容
        mysql_query($sql,$conn);
        //使用json_encode()将php数据封装在js中,以在js中访问
        $msg=json_encode($msg);
        echo '<script type="text/javascript">';
        echo 'parent.window.comet('.$msg.');';
        echo '</script>';
        //强迫php把内容发给Apache
        ob_flush(); 
        //强迫apache发给浏览器      
        flush();           

 }

 sleep(1);
}
?>
