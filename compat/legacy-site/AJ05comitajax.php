<?php

// 永久执行直到程序结束
set_time_limit(0);
//导入连接数据库的代码
require('./AJconn.php');

//从COOKIE中获取用户username
$rec=$_COOKIE['username'];
//遍历数据库接受者是用户的信息且isread=0
$sql="select * from msg where rec='$rec' and isread=0 limit 1";

//客户端一直在监听的事件
while(true){
    //执行sql语句
    $rs=mysql_query($sql,$conn);
    //找出结果集符合条件的一条字段集
    $row=mysql_fetch_assoc($rs);
    if(!empty($row)){
        //跟新数据库数据isread=1
        $sql="update msg set isread=1 where mid=" . $row['mid'];
        mysql_query($sql,$conn);
        //对结果集进行json格式的编码,便于数据传输和利用
        echo json_encode($row);
        exit();

    }

    //减轻服务器负担
    sleep(1);
}
?>
